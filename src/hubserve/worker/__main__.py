from hubserve.worker.server import main

main()
