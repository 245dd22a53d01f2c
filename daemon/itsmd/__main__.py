from itsmd.cli import main

raise SystemExit(main())
