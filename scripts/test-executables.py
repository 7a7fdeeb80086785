"""Prints the paths of test binaries from `cargo test --no-run --message-format=json`.

Usage: test-executables.py BUILD_JSON PACKAGE TARGET...

One path per TARGET (an integration-test target of PACKAGE), in the order given.
Exits 1, naming the target, when one is missing from the build's output.
"""

import json
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    build_json, package, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
    found = {}
    with open(build_json, encoding="utf-8") as lines:
        for line in lines:
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            if message.get("reason") != "compiler-artifact" or not message.get("executable"):
                continue
            target = message["target"]
            # package_id reads "path+file:///…/crates/NAME#VERSION" or "NAME VERSION (…)".
            package_id = message["package_id"]
            if f"/{package}#" not in package_id and not package_id.startswith(f"{package} "):
                continue
            if "test" in target["kind"]:
                found[target["name"]] = message["executable"]
    missing = [t for t in targets if t not in found]
    if missing:
        print(
            f"error: no test binary for {', '.join(missing)} in {build_json} (package {package})",
            file=sys.stderr,
        )
        return 1
    print("\n".join(found[t] for t in targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
