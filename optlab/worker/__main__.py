"""``python -m optlab.worker FD``: the engine process on socket ``FD`` (`optlab.worker.child`)."""

import sys

from optlab.worker.child import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
