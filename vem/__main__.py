import os
import sys

if os.environ.get("VEM_FORKSERVER", "off") != "off":    # a workflow job: run in a child of the run's fork server
    from .forkserver import ENV, submit

    code = submit(os.environ[ENV], sys.argv[1:])
    if code is not None:
        raise SystemExit(code)

from .cli import main  # noqa: E402

raise SystemExit(main())
