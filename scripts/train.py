"""Train a style network (the same as ``fastnst train``).

    python scripts/train.py style=starry_night data.root=/path/to/coco/train2014
    python scripts/train.py style=custom style.image=painting.jpg style.name=my_style
    python scripts/train.py --resume logs/starry_night/2026-11-24_10-00-00
    python scripts/train.py experiment=demo

Any config value can be overridden on the command line (see configs/).
"""

import sys

from fastnst.training.train import cli

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
