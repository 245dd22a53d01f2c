from itsmd.cli.main import main

raise SystemExit(main())
