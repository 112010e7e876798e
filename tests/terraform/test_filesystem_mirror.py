"""The other way docs/terraform.md gives to make Terraform find the provider: a filesystem mirror.

The unpacked layout (HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-hubserve_vVERSION), the
executable linked from where pip put it; `terraform init` installs it from there and records it in
the lock file, and `terraform validate` runs it (the schema comes from the provider itself).
"""

from __future__ import annotations

import platform
from pathlib import Path

from hubserve import __version__
from tests.terraform.conftest import Terraform, provider_dir

CONFIG = """
terraform {
  required_providers {
    hubserve = { source = "hubserve/hubserve" }
  }
}

provider "hubserve" {
  url = "http://127.0.0.1:1"
}

resource "hubserve_endpoint" "x" {
  name = "x"
  model {
    source = "/models/x"
  }
  serverless {
    memory_mb = 3000
  }
}
"""


def test_a_filesystem_mirror_installs_the_provider(terraform: Terraform, tmp_path: Path) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    target = tmp_path / "mirror" / "registry.terraform.io" / "hubserve" / "hubserve" / __version__ / f"linux_{arch}"
    target.mkdir(parents=True)
    (target / f"terraform-provider-hubserve_v{__version__}").symlink_to(provider_dir() / "terraform-provider-hubserve")
    rc = Path(terraform.env["TF_CLI_CONFIG_FILE"])
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{tmp_path / "mirror"}"\n    include = ["hubserve/hubserve"]\n  }}\n'
        '  direct {\n    exclude = ["hubserve/hubserve"]\n  }\n'
        "}\n"
    )
    terraform.write(CONFIG)
    initialised = terraform.expect(0, "init", "-input=false", "-no-color")
    assert f"Installed hubserve/hubserve v{__version__}" in initialised
    assert "hubserve/hubserve" in (terraform.workdir / ".terraform.lock.hcl").read_text()
    # validate runs the provider: the spec's own check refuses a memory size that is not a step of 1024 MB
    refused = terraform.run("validate", "-no-color")
    assert refused.returncode == 1 and "memory_mb must be one of 1024, 2048" in refused.stderr, refused.stderr
