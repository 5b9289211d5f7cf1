from syncops.cli import main

main()
