from sparsegan.cli import main

raise SystemExit(main())
