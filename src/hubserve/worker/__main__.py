import sys

from hubserve.logs.stamp import stamp_output

stamp_output()  # before the imports below: whatever torch and transformers print while importing is stamped too

from hubserve.worker.sandbox import drop_privileges, take_run_as  # noqa: E402

_run_as, _argv = take_run_as(sys.argv[1:])
if _run_as:
    # Import what a zygote fork would already hold, while the Python install is still readable
    # (it may live in root's home), then give up root before the model's own code is imported.
    from hubserve.worker.zygote import preload

    preload()
    drop_privileges(_run_as)

from hubserve.worker.server import main  # noqa: E402

main(_argv)
