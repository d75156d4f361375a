from loopscope.cli import main

main()
