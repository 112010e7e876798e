"""``terraform-provider-hubserve``: the executable Terraform starts (``pip install "hubserve[terraform]"``)."""

from __future__ import annotations

import os
import sys

# go-plugin's handshake: Terraform sets this before starting a provider (a person running the file does not).
MAGIC_COOKIE = "TF_PLUGIN_MAGIC_COOKIE"


def main() -> None:
    """Serve the plugin protocol until Terraform is done; run by Terraform, not by hand."""
    if MAGIC_COOKIE not in os.environ and "--dev" not in sys.argv:
        print(
            "terraform-provider-hubserve is a Terraform plugin: Terraform starts it. docs/terraform.md shows how "
            "to make Terraform find it (dev_overrides or a filesystem_mirror).",
            file=sys.stderr,
        )
        raise SystemExit(1)
    from tf.runner import run_provider

    from hubserve.terraform.provider import HubserveProvider

    run_provider(HubserveProvider(), sys.argv)


if __name__ == "__main__":
    main()
