"""Fixtures for the Yubin integration tests (see harness.py).

    instance  a configured, not yet started instance (one inet service "echo",
              2 workers, on a free 127.0.0.1 port)
    running   the same, started with "mailctl start"

Both are always stopped at teardown, also when the test failed: mailctl stop,
then SIGKILL for any process left whose command line names the instance's
config directory. A failed test's log is printed; its directory is kept
when YUBIN_TEST_KEEP=1.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session", autouse=True)
def built_tree():
    missing = [str(p) for p in (harness.MAILCTL, harness.MASTER, harness.ECHOD) if not os.access(p, os.X_OK)]
    if missing:
        pytest.exit("not built (run ./configure && make && make tests/helpers/echod, or set "
                    "YUBIN_BUILD_DIR): missing " + ", ".join(missing), returncode=2)
    if harness.IS_ROOT:
        harness.ensure_test_user()


@pytest.fixture
def instance(request):
    base = harness.make_base_dir()
    inst = harness.Instance(base)
    try:
        yield inst
    finally:
        inst.cleanup()
        failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False)
                     for w in ("setup", "call"))
        keep = failed and os.environ.get("YUBIN_TEST_KEEP") == "1"
        if failed:
            print(f"\n--- log of the instance in {base}{' (kept)' if keep else ''}:\n{inst.log()}")
        if not keep:
            harness.remove_base_dir(base)


@pytest.fixture
def running(instance):
    instance.start()
    return instance


@pytest.fixture
def root_only():
    if not harness.IS_ROOT:
        pytest.skip("needs root: privilege drop, chroot and control-socket access checks "
                    "only happen when master runs as root")
