from deal_core.cli import main

main()
