"""``python -m llmops.run.tunnels ssh-forward ...``: the SSH tunnel's child program."""

import sys

from llmops.run.tunnels.forward import main

sys.exit(main())
