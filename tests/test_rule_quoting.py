"""Names in the rule payloads of ``sim emulate`` are data, never syntax (issue 24).

Every character class (quotes, backslashes, braces, ``;``, ``#``, ``$``, whitespace, newlines and other controls,
unicode, lone surrogates) goes through both payloads. A name is either refused with one SpecError, for the reasons
``sim.emulate.quoting`` gives (control characters, lone surrogates, a ``"`` for nft, a comment longer than the
kernel keeps), or it is inert, which is proved by parsing the payload back:

- everywhere, by a grammar check: the payload, read word by word as iptables-restore reads it (``xshared.c``,
  ``add_param_to_argv``: double quotes group, a backslash inside them takes the next character) or as nft's
  scanner reads it (``"[^"]*"`` strings, no escape), has the same lines and the same words as the payload of a
  plain name, except the comments (each reads back as its text, name and all) and the hashed chain names;
- where ``iptables-restore`` and ``nft`` exist and we are root, by the tools themselves inside a fresh network
  namespace (``unshare -n``): ``iptables-restore --test`` and ``nft -c -f`` accept the payloads, and, loaded
  there, ``iptables-save`` and ``nft -j list ruleset`` give every comment back as written and no rule in a
  built-in chain beyond kube-proxy's own jumps.

kube-proxy itself never quotes: the API server holds names to DNS labels, and ``pkg/proxy/iptables/proxier.go``
(``syncProxyRules``) writes ``fmt.Sprintf(`"%s cluster IP"`, svcPortNameString)``; knftables (``objects.go``,
``writeOperation``) writes ``comment %q``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cluster import Service, SessionAffinity, TrafficPolicy
from sim.emulate.quoting import IPTABLES_COMMENT_MAX, NFT_COMMENT_MAX
from sim.emulate.rules.common import qualified
from sim.emulate.rules.iptables import iptables_jumps, iptables_restore
from sim.emulate.rules.nftables import nft_transaction
from sim.errors import SpecError
from tests.test_emulate_rules import pod, rules_on, scenario

TOOLS = os.geteuid() == 0 and all(shutil.which(t) for t in ("iptables-restore", "iptables-save", "nft", "unshare"))
HOSTILE = [
    '"',
    "'",
    "\\",
    "{",
    "}",
    ";",
    "#",
    "$",
    " ",
    "\t",
    "\n",
    "\r",
    "\x00",
    "\x1b",
    "\u2028",
    "-A INPUT -j DROP",
    " : goto reject-chain }",
    'include "/etc/hostname"',
    "COMMIT",
    "*filter",
    "é",
    "名",
    "🙂",
    "\ud800",
    "\udfff",
    "$\\undefined{x}$",
]
NAMES = st.lists(st.sampled_from(HOSTILE) | st.text(max_size=3), min_size=1, max_size=6).map("".join)


def services(name: str):
    """Node a's view of two Services named from ``name``: one with endpoints, affinity, node port, external and
    load-balancer IPs and eTP=Local (every comment of a Service with endpoints), one with none (every "no
    endpoints" comment and element)."""
    full = Service(
        name,
        {"app": "svc"},
        session_affinity=SessionAffinity.CLIENT_IP,
        node_port=30080,
        external_ips=("192.0.2.10",),
        load_balancer_ips=("192.0.2.11",),
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    empty = Service(name + "-x", {"app": "none"}, node_port=30081, external_ips=("192.0.2.12",), port=81)
    return rules_on(scenario([pod("s1", "a", "10.244.0.3"), pod("s2", "b", "10.244.1.2")], [full, empty]))


def payload(name: str, tool: str) -> str:
    """What kube-proxy feeds ``tool`` on node a: iptables-restore's jumps and restore, or nft's transaction."""
    if tool == "iptables":
        return iptables_jumps() + iptables_restore(services(name))
    return nft_transaction(services(name))


def iptables_words(line: str) -> list[str]:
    """One line read as iptables-restore's ``add_param_to_argv`` reads it."""
    words, word, quoted, escaped, in_word = [], [], False, False, False
    for ch in line:
        if quoted:
            if escaped:
                word.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                word.append(ch)
        elif ch == '"':
            quoted = in_word = True
        elif ch in " \t":
            if in_word:
                words.append("".join(word))
            word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
    assert not quoted, f"unterminated quote in {line!r}"
    if in_word:
        words.append("".join(word))
    return words


def nft_words(line: str) -> list[str]:
    """One line read as nft's scanner splits it: quoted strings (no escape), else whitespace-separated words."""
    words = re.findall(r'"[^"]*"|[^\s"]+', line)
    assert "".join(words) == "".join(line.split()) or '"' in line, line
    return [w[1:-1] if w.startswith('"') else w for w in words]


HASHED = re.compile(
    r"KUBE-(SVC|SVL|SEP|EXT)-[A-Z2-7]{16}|(service|local|external|endpoint|affinity)-[A-Z2-7]{8}([A-Z2-7]{8}|-[A-Za-z0-9/_.-]*)"
)


def unhashed(word: str) -> str:
    """``word`` with every hashed chain or set name replaced by its kind."""
    return HASHED.sub(lambda m: m.group(1) or m.group(2), word)


def same_shape(hostile: list[list[str]], plain: list[list[str]], name: str, plain_name: str) -> None:
    """Line by line and word by word the same, except comments (which must hold the name where the plain payload
    holds the plain name) and hashed names."""
    assert len(hostile) == len(plain)
    for h, p in zip(hostile, plain, strict=True):
        assert len(h) == len(p), (h, p)
        for i, (a, b) in enumerate(zip(h, p, strict=True)):
            if a == b:
                continue
            after_comment = i > 0 and (h[i - 1] in ("--comment", "comment"))
            if after_comment:
                assert a == b.replace(qualified(plain_name), qualified(name), 1), (a, b)
            else:
                assert unhashed(a) == unhashed(b), (a, b)


def refused_for(name: str) -> set[str]:
    """The tools whose payload must refuse ``name``: both for a control character or a lone surrogate; each for a
    comment longer than its kernel keeps; nft for a double quote."""
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in name):
        return {"iptables", "nft"}
    out = set()
    if len(f"masquerade LOCAL traffic for default/{name} external destinations".encode()) > IPTABLES_COMMENT_MAX:
        out.add("iptables")
    if '"' in name or len(f"default/{name}-x".encode()) > NFT_COMMENT_MAX:
        out.add("nft")
    return out


def netns(script: str, files: dict[str, str]) -> str:
    """``script`` (sh) in a fresh network namespace, with ``files`` written to a temporary directory ($D)."""
    with tempfile.TemporaryDirectory() as d:
        for name, text in files.items():
            Path(d, name).write_text(text, encoding="utf-8")
        done = subprocess.run(
            ["unshare", "-n", "sh", "-ec", script], env={**os.environ, "D": d}, capture_output=True, timeout=60
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def comments(lines: list[list[str]]) -> set[str]:
    """The words after ``--comment`` (iptables) or ``comment`` (nft)."""
    return {w[i + 1] for w in lines for i, x in enumerate(w[:-1]) if x in ("--comment", "comment")}


def json_comments(obj: object) -> set[str]:
    """Every ``comment`` value anywhere in ``nft -j`` output (nft 1.0.6 lists no table or chain comment)."""
    if isinstance(obj, dict):
        own = {obj["comment"]} if isinstance(obj.get("comment"), str) else set()
        return own.union(*(json_comments(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(json_comments(v) for v in obj))
    return set()


BUILT_IN = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def kernel_check_iptables(text: str, service: str) -> None:
    """iptables-restore --test accepts it; loaded, iptables-save gives every comment back and no rule in a built-in
    chain but kube-proxy's jumps."""
    saved = netns(
        'iptables-restore --noflush --test < "$D/p"; iptables-restore --noflush < "$D/p"; iptables-save',
        {"p": text},
    )
    lines = [iptables_words(line) for line in saved.splitlines()]
    named = {c for c in comments([iptables_words(line) for line in text.splitlines()]) if service in c}
    assert named and named <= comments(lines)
    for w in lines:
        if w[:1] == ["-A"] and w[1] in BUILT_IN:
            assert w[-2:-1] == ["-j"] and w[-1].startswith("KUBE-"), w


def kernel_check_nft(text: str, service: str) -> None:
    """nft -c -f accepts it; loaded, ``nft -j list ruleset`` gives every comment back and holds only kube-proxy's
    table."""
    listed = json.loads(netns('nft -c -f "$D/p"; nft -f "$D/p"; nft -j list ruleset', {"p": text}))["nftables"]
    assert {(o["table"]["family"], o["table"]["name"]) for o in listed if "table" in o} == {("ip", "kube-proxy")}
    named = {c for c in comments([nft_words(line) for line in text.splitlines()]) if service in c}
    assert named and named <= json_comments(listed)


WORDS = {"iptables": iptables_words, "nft": nft_words}
KERNEL = {"iptables": kernel_check_iptables, "nft": kernel_check_nft}


def check(name: str, tool: str) -> None:
    """``name`` is refused in one line exactly when it must be, and inert in ``tool``'s payload otherwise."""
    try:
        text = payload(name, tool)
    except SpecError as e:
        assert tool in refused_for(name), f"{tool} refused {name!r}: {e}"
        assert "\n" not in str(e) and len(str(e)) < 300
        return
    assert tool not in refused_for(name), f"{tool} accepted {name!r}"
    words = WORDS[tool]
    plain_name = "".join("/" if ch == "/" else "n" for ch in name)  # a "/" names a namespace: kept
    plain = [words(line) for line in payload(plain_name, tool).splitlines()]
    same_shape([words(line) for line in text.splitlines()], plain, name, plain_name)
    if TOOLS:
        KERNEL[tool](text, qualified(name))


@pytest.mark.parametrize("tool", ["iptables", "nft"])
@pytest.mark.parametrize("name", HOSTILE)
def test_each_character_class_alone(name, tool):
    check("svc" + name, tool)


@settings(max_examples=40 if TOOLS else 200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES, tool=st.sampled_from(["iptables", "nft"]))
def test_any_name_is_refused_or_inert(name, tool):
    check(name, tool)


def test_the_issue_s_injections_are_inert():
    """The names of issue 24: an iptables rule after a quote, and nft's ``include`` after a closed element."""
    check('a" -A INPUT -j DROP', "iptables")
    text = payload('a" -A INPUT -j DROP', "iptables")
    assert all(w[:2] != ["-A", "INPUT"] or w[-1].startswith("KUBE-") for w in map(iptables_words, text.splitlines()))
    with pytest.raises(SpecError, match="control character"):
        payload('x" : goto reject-chain }\ninclude "/etc/hostname', "nft")
    with pytest.raises(SpecError, match="double quote"):
        payload('x" : goto reject-chain } include "/etc/hostname', "nft")
    with pytest.raises(SpecError, match="control character"):
        payload("x : goto reject-chain }\ninclude /etc/hostname", "nft")
    # without the quote and the newline, what is left is one comment's text
    check("x : goto reject-chain } include /etc/hostname", "nft")


def test_a_plain_name_keeps_upstream_s_bytes():
    """A DNS-label name is written exactly as kube-proxy writes it: quoting is the identity there."""
    text = payload("echo", "iptables")
    assert '-m comment --comment "default/echo cluster IP"' in text
    assert "-m comment --comment default/echo -s 10.244.0.3 -j KUBE-MARK-MASQ" in text
    assert 'comment "default/echo-x" : goto reject-chain' in payload("echo", "nft")


def test_a_name_outside_nft_identifiers_gets_a_hash_only_chain():
    text = payload("a b", "nft")
    chains = {w[4] for w in map(nft_words, text.splitlines()) if w[:2] == ["add", "chain"]}
    assert all(" " not in c for c in chains)
    assert any(re.fullmatch(r"service-[A-Z2-7]{16}", c) for c in chains)
