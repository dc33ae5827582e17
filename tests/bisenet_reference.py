"""An independent functional BiSeNet face parser (test reference): every layer computed from the flat state
dict with torch.nn.functional, following the description of face-parsing.PyTorch's model in the anchors
(ResNet-18 context path, attention refinement, feature fusion, main head)."""

import torch.nn.functional as F


def _bn(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        training=False, eps=1e-5)


def _cbr(sd, p, x, pad):
    return F.relu(_bn(sd, f"{p}.bn", F.conv2d(x, sd[f"{p}.conv.weight"], padding=pad)))


def _basic(sd, p, x, stride):
    y = F.relu(_bn(sd, f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1)))
    y = _bn(sd, f"{p}.bn2", F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1))
    short = x
    if f"{p}.downsample.0.weight" in sd:
        short = _bn(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride))
    return F.relu(short + y)


def _arm(sd, p, x):
    f = _cbr(sd, f"{p}.conv", x, 1)
    a = F.avg_pool2d(f, f.shape[2:])
    a = _bn(sd, f"{p}.bn_atten", F.conv2d(a, sd[f"{p}.conv_atten.weight"])).sigmoid()
    return f * a


def bisenet_logits(sd, x):
    r = "cp.resnet"
    h = F.relu(_bn(sd, f"{r}.bn1", F.conv2d(x, sd[f"{r}.conv1.weight"], stride=2, padding=3)))
    h = F.max_pool2d(h, 3, 2, 1)
    for layer, stride in ((1, 1), (2, 2), (3, 2), (4, 2)):
        h = _basic(sd, f"{r}.layer{layer}.0", h, stride)
        h = _basic(sd, f"{r}.layer{layer}.1", h, 1)
        if layer == 2:
            f8 = h
        elif layer == 3:
            f16 = h
    f32 = h
    avg = _cbr(sd, "cp.conv_avg", F.avg_pool2d(f32, f32.shape[2:]), 0)
    s32 = _arm(sd, "cp.arm32", f32) + F.interpolate(avg, f32.shape[2:], mode="nearest")
    u32 = _cbr(sd, "cp.conv_head32", F.interpolate(s32, f16.shape[2:], mode="nearest"), 1)
    s16 = _arm(sd, "cp.arm16", f16) + u32
    u16 = _cbr(sd, "cp.conv_head16", F.interpolate(s16, f8.shape[2:], mode="nearest"), 1)
    import torch

    fuse = _cbr(sd, "ffm.convblk", torch.cat([f8, u16], 1), 0)
    att = F.avg_pool2d(fuse, fuse.shape[2:])
    att = F.conv2d(F.relu(F.conv2d(att, sd["ffm.conv1.weight"])), sd["ffm.conv2.weight"]).sigmoid()
    fuse = fuse * att + fuse
    out = F.conv2d(_cbr(sd, "conv_out.conv", fuse, 1), sd["conv_out.conv_out.weight"])
    return F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=True)
