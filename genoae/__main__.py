from genoae.cli import main

main()
