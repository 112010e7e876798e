from hubserve.logs.stamp import stamp_output

stamp_output()  # before the imports below: whatever torch and transformers print while importing is stamped too

from hubserve.worker.server import main  # noqa: E402

main()
