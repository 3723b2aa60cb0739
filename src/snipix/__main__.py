from snipix.cli import main

main()
