"""Names made inert for the two rule languages ``sim emulate`` writes: quoted by each tool's own grammar, or refused.

kube-proxy never quotes: the API server has already held every name to a DNS label (``validation.IsDNS1035Label``
for a Service, ``IsDNS1123Label`` for a namespace), so ``pkg/proxy/iptables/proxier.go`` (``syncProxyRules``)
writes ``"-m", "comment", "--comment", fmt.Sprintf(`"%s cluster IP"`, svcPortNameString)`` and knftables
(``objects.go``, ``writeOperation``) writes ``comment %q``. Scenario names are not held to that, so here:

- iptables-restore (``xshared.c``, ``add_param_to_argv``) reads a line into words; inside ``"..."`` a backslash
  takes the next character literally. A comment is written in double quotes with ``\\`` and ``"`` escaped; a bare
  word (upstream's unquoted ``--comment NAME``) only when it has no character the tokenizer treats specially.
- nft's scanner (``scanner.l``: ``quotedstring \\"[^"]*\\"``) has no escape at all: a comment holding ``"`` is
  refused. An identifier (a chain or set name) is the scanner's ``string`` token, ``[a-zA-Z_.][a-zA-Z0-9/\\-_.]*``;
  a readable part outside that is replaced by its hash.
- Either tool reads one statement per line: a control character (newline, carriage return, NUL, ...) or a lone
  surrogate (not encodable as UTF-8) is refused in every name, as are comments longer than the kernel keeps
  (``XT_MAX_COMMENT_LEN`` 256 bytes with its NUL; ``NFTNL_UDATA_COMMENT_MAXLEN``, knftables' ``CommentLengthMax``,
  128 bytes).
"""

from __future__ import annotations

import re
import unicodedata

from sim.errors import SpecError

IPTABLES_COMMENT_MAX = 255
"""Bytes of an iptables comment: ``XT_MAX_COMMENT_LEN`` (256) less its NUL (libxt_comment refuses more)."""
NFT_COMMENT_MAX = 128
"""Bytes of an nftables comment: ``NFTNL_UDATA_COMMENT_MAXLEN`` (knftables ``CommentLengthMax``)."""
_IPTABLES_WORD = re.compile(r"[A-Za-z0-9_./:-]+")
_NFT_IDENTIFIER = re.compile(r"[A-Za-z0-9/\-_.]*")
_WHERE = "emulate"


def _refuse(text: str, problem: str) -> SpecError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return SpecError(_WHERE, "", f"name {shown!a}: {problem}")


def checked(text: str) -> str:
    """``text`` if no character in it could end a statement or fail to encode: no control character (category
    Cc, Zl, Zp) and no lone surrogate; else a SpecError."""
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):
            raise _refuse(text, f"holds the control character {ch!a}, which would end a rule's line")
        if category == "Cs":
            raise _refuse(text, "holds a lone surrogate, which is not text (no UTF-8 encoding)")
    return text


def _fits(text: str, limit: int, tool: str) -> str:
    if len(text.encode()) > limit:
        raise _refuse(text, f"makes a {tool} comment longer than the kernel keeps ({limit} bytes)")
    return text


def iptables_comment(text: str) -> str:
    """``text`` as one iptables-restore word in double quotes, ``\\`` and ``"`` escaped (``add_param_to_argv``).

    >>> print(iptables_comment('default/a"b -A INPUT -j DROP'))
    "default/a\\"b -A INPUT -j DROP"
    """
    _fits(checked(text), IPTABLES_COMMENT_MAX, "iptables")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def iptables_word(text: str) -> str:
    """``text`` bare where upstream writes it bare (``--comment default/echo``), when the tokenizer would read it as
    one word; quoted (``iptables_comment``) otherwise.

    >>> iptables_word("default/echo"), iptables_word("default/a b")
    ('default/echo', '"default/a b"')
    """
    if _IPTABLES_WORD.fullmatch(text) and len(text.encode()) <= IPTABLES_COMMENT_MAX:
        return text
    return iptables_comment(text)


def nft_comment(text: str) -> str:
    """``text`` as an nft quoted string; a ``"`` is refused (nft's quoted string has no escape).

    >>> print(nft_comment("default/echo"))
    "default/echo"
    """
    _fits(checked(text), NFT_COMMENT_MAX, "nftables")
    if '"' in text:
        raise _refuse(text, "holds a double quote, which nft cannot quote (its strings have no escape)")
    return f'"{text}"'


def nft_identifier(digest: str, readable: str) -> str:
    """The tail of a chain or set name (after its ``service-``/``endpoint-`` prefix): upstream's ``hashAndTruncate``
    form, 8 characters of ``digest`` then ``-readable``, when ``readable`` is made of the characters of nft's
    identifier token; else 16 characters of ``digest`` alone. A name never brings syntax of its own.

    >>> nft_identifier("ULMVA6XWABCDEFGHIJ", "ns1/svc1/tcp/p80"), nft_identifier("ULMVA6XWABCDEFGHIJ", 'a" ; }')
    ('ULMVA6XW-ns1/svc1/tcp/p80', 'ULMVA6XWABCDEFGH')
    """
    checked(readable)
    return f"{digest[:8]}-{readable}" if _NFT_IDENTIFIER.fullmatch(readable) else digest[:16]
