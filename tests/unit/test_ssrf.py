from __future__ import annotations

import pytest

from inferstack.jobs.exceptions import UnsafeWebhookUrlError
from inferstack.jobs.ssrf import check_webhook_url


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        return table[host]
    return resolve


PUBLIC = resolver({"hooks.example.com": ["93.184.216.34"], "v6.example.com": ["2606:2800:220:1::1"],
                   "internal.example.com": ["10.1.2.3"], "mixed.example.com": ["93.184.216.34", "192.168.0.9"],
                   "meta.example.com": ["169.254.169.254"], "rebind.example.com": ["127.0.0.1"]})


def test_public_https_url_is_allowed() -> None:
    checked = check_webhook_url("https://hooks.example.com/inferstack?x=1", resolve=PUBLIC)
    assert checked.addresses == ("93.184.216.34",) and checked.port == 443
    assert check_webhook_url("https://v6.example.com:8443/h", resolve=PUBLIC).port == 8443


@pytest.mark.parametrize(("url", "reason"), [
    ("http://hooks.example.com/", "must use https"),
    ("ftp://hooks.example.com/", "must use https"),
    ("hooks.example.com/x", "no host"),
    ("https://user:pw@hooks.example.com/", "credentials"),
    ("https://127.0.0.1/", "loopback"),
    ("https://127.8.9.10/", "loopback"),
    ("https://[::1]/", "loopback"),
    ("https://localhost/", "loopback name"),
    ("https://api.localhost/", "loopback name"),
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://100.64.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://169.254.10.10/", "link-local"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fd00:ec2::254]/", "metadata"),
    ("https://[fc00::5]/", "private"),
    ("https://[::ffff:10.0.0.1]/", "private"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),
    ("https://0.0.0.0/", "(private|non-public)"),
    ("https://224.0.0.1/", "non-public"),
    ("https://internal.example.com/", "resolves to a private address"),
    ("https://mixed.example.com/", "resolves to a private address"),
    ("https://meta.example.com/", "metadata"),
    ("https://hooks.example.com:99999/", "malformed"),
])
def test_unsafe_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeWebhookUrlError, match=reason):
        check_webhook_url(url, resolve=PUBLIC)


def test_loopback_only_with_the_explicit_dev_setting() -> None:
    assert check_webhook_url("http://127.0.0.1:9000/h", allow_loopback=True, resolve=PUBLIC).scheme == "http"
    # the dev setting opens loopback, nothing else
    with pytest.raises(UnsafeWebhookUrlError, match="private"):
        check_webhook_url("https://10.0.0.1/", allow_loopback=True, resolve=PUBLIC)
    with pytest.raises(UnsafeWebhookUrlError, match="only allowed to loopback"):
        check_webhook_url("http://hooks.example.com/", allow_loopback=True, resolve=PUBLIC)


@pytest.mark.parametrize("url", ["https://internal.example.com/", "https://mixed.example.com/",
                                 "https://rebind.example.com/"])
def test_what_a_name_resolves_to_is_not_told(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrlError) as info:
        check_webhook_url(url, resolve=PUBLIC)
    assert not any(a in str(info.value) for a in ("10.1.2.3", "192.168.0.9", "127.0.0.1"))


def test_loopback_never_reaches_the_local_stack_itself() -> None:
    stack = {4566, 8000, 41001}  # the AWS emulator, the gateway, a function's runtime
    for url in ("http://127.0.0.1:4566/moto-api/reset", "http://localhost:41001/2015-03-31/functions/x/invocations",
                "http://[::1]:8000/v1/jobs"):
        with pytest.raises(UnsafeWebhookUrlError, match="local stack itself"):
            check_webhook_url(url, allow_loopback=True, resolve=lambda h, p: ["127.0.0.1"], refused_ports=stack)
    assert check_webhook_url("http://127.0.0.1:9000/hooks", allow_loopback=True, refused_ports=stack).port == 9000
