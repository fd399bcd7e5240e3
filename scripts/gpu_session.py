"""``python scripts/gpu_session.py ...`` is ``python -m fastnst.gpu_session ...`` (see :mod:`fastnst.gpu_session`)."""

import sys

from fastnst.gpu_session import main

if __name__ == "__main__":
    sys.exit(main())
