import sys

from registry_service.cli import main

sys.exit(main())
