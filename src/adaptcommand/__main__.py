from adaptcommand.cli import main

main()
