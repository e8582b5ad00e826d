"""``python -m durable``: the same as the ``durable`` command."""

from ._cli import main

raise SystemExit(main())
