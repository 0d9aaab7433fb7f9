import sys

from bigclust.cli import main

sys.exit(main())
