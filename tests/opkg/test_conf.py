"""opkg.conf and /etc/opkg/*.conf, read as opkg-lede reads them."""
from __future__ import annotations

from pathlib import Path

import pytest

from pineapple.opkg.conf import (
    DEFAULT_LISTS_DIR,
    Feed,
    OpkgConf,
    load_conf,
    parse_conf_text,
)

OPENWRT_CONF = """\
dest root /
dest ram /tmp
lists_dir ext /var/opkg-lists
option overlay_root /overlay
option check_signature
"""
DISTFEEDS = """\
src/gz openwrt_core https://downloads.openwrt.org/releases/23.05.3/targets/ramips/mt76x8/packages
src/gz openwrt_base https://downloads.openwrt.org/releases/23.05.3/packages/mipsel_24kc/base
# src/gz openwrt_luci https://downloads.openwrt.org/releases/23.05.3/packages/mipsel_24kc/luci
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An offline root laid out like an OpenWrt device."""
    write(tmp_path / "etc/opkg.conf", OPENWRT_CONF)
    write(tmp_path / "etc/opkg/distfeeds.conf", DISTFEEDS)
    write(tmp_path / "etc/opkg/customfeeds.conf", "src/gz pineapple file:///srv/feed\n")
    return tmp_path


def test_openwrt_layout_with_offline_root(root: Path) -> None:
    conf = load_conf(str(root / "etc/opkg.conf"), str(root))
    assert conf.feeds == [
        Feed("pineapple", "file:///srv/feed", True),  # customfeeds.conf sorts first
        Feed("openwrt_core",
             "https://downloads.openwrt.org/releases/23.05.3/targets/ramips/mt76x8/packages", True),
        Feed("openwrt_base",
             "https://downloads.openwrt.org/releases/23.05.3/packages/mipsel_24kc/base", True),
    ]
    assert conf.dests == {"root": "/", "ram": "/tmp"}
    assert conf.lists_dir == "/var/opkg-lists"
    assert conf.options == {"overlay_root": "/overlay", "check_signature": ""}
    assert conf.files == [str(root / "etc/opkg.conf"), str(root / "etc/opkg/customfeeds.conf"),
                          str(root / "etc/opkg/distfeeds.conf")]


def test_paths_resolve_inside_the_offline_root(root: Path) -> None:
    conf = load_conf(str(root / "etc/opkg.conf"), str(root))
    assert conf.dest_path("root") == str(root)
    assert conf.dest_path("ram") == str(root / "tmp")
    assert conf.lists_path() == str(root / "var/opkg-lists")
    assert conf.list_file("openwrt_base") == str(root / "var/opkg-lists/openwrt_base")
    assert conf.lock_path() == str(root / "var/lock/opkg.lock")
    assert conf.status_paths() == {
        "root": str(root / "usr/lib/opkg/status"),
        "ram": str(root / "tmp/usr/lib/opkg/status"),
    }
    assert conf.info_dir("ram") == str(root / "tmp/usr/lib/opkg/info")
    with pytest.raises(KeyError):
        conf.dest_path("sd")


def test_paths_without_offline_root() -> None:
    conf = OpkgConf(dests={"root": "/", "sd": "/mnt/sd/"}, lists_dir="/var/opkg-lists")
    assert conf.dest_path() == "/"
    assert conf.dest_path("sd") == "/mnt/sd"
    assert conf.lists_path() == "/var/opkg-lists"
    assert conf.lock_path() == "/var/lock/opkg.lock"
    assert conf.status_paths() == {"root": "/usr/lib/opkg/status",
                                   "sd": "/mnt/sd/usr/lib/opkg/status"}


def test_offline_root_without_main_file_reads_only_its_conf_dir(root: Path) -> None:
    conf = load_conf(None, str(root))
    assert [feed.name for feed in conf.feeds] == ["pineapple", "openwrt_core", "openwrt_base"]
    assert conf.dests == {}  # opkg.conf itself is not read under -o without -f
    assert conf.lists_dir == DEFAULT_LISTS_DIR


def test_defaults_match_opkg_lede(tmp_path: Path) -> None:
    conf = load_conf(str(write(tmp_path / "opkg.conf", "")), conf_dir=str(tmp_path / "none"))
    assert conf.feeds == [] and conf.arches == [] and conf.options == {}
    assert conf.dest_names() == ["root"]
    assert conf.dest_path() == "/"
    assert conf.lists_path() == "/usr/lib/opkg/lists"
    assert conf.status_paths() == {"root": "/usr/lib/opkg/status"}


def test_conf_dir_is_read_without_offline_root(tmp_path: Path) -> None:
    main = write(tmp_path / "opkg.conf", "src/gz one http://one.example\n")
    write(tmp_path / "opkg.d/b.conf", "src/gz two http://two.example\n")
    write(tmp_path / "opkg.d/a.conf", "src/gz one http://ignored.example\n")
    write(tmp_path / "opkg.d/notes.txt", "src/gz three http://three.example\n")
    write(tmp_path / "opkg.d/.hidden.conf", "src/gz four http://four.example\n")
    (tmp_path / "opkg.d/dir.conf").mkdir()
    conf = load_conf(str(main), conf_dir=str(tmp_path / "opkg.d"))
    assert conf.feeds == [Feed("one", "http://one.example", True),
                          Feed("two", "http://two.example", True)]


def test_main_file_inside_conf_dir_is_read_once(tmp_path: Path) -> None:
    main = write(tmp_path / "opkg.d/main.conf", "arch all 1\n")
    conf = load_conf(str(main), conf_dir=str(tmp_path / "opkg.d"))
    assert conf.arches == [("all", 1)]
    assert conf.files == [str(main)]


def test_missing_main_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_conf(str(tmp_path / "nope.conf"), conf_dir=str(tmp_path))


def test_offline_root_option_in_main_file_acts_like_dash_o(root: Path, tmp_path: Path) -> None:
    main = write(tmp_path / "outside.conf", f"option offline_root {root}\nlists_dir ext /var/l\n")
    conf = load_conf(str(main), None)
    assert conf.offline_root == str(root)
    assert conf.lists_path() == str(root / "var/l")
    assert [feed.name for feed in conf.feeds] == ["pineapple", "openwrt_core", "openwrt_base"]


def parsed(text: str) -> OpkgConf:
    conf = OpkgConf()
    parse_conf_text(conf, text)
    return conf


def test_plain_src_and_first_declaration_wins() -> None:
    conf = parsed("src local file:///srv/plain\nsrc/gz local http://other.example\n")
    assert conf.feeds == [Feed("local", "file:///srv/plain", False)]


def test_comments_blank_lines_and_garbage() -> None:
    conf = parsed(
        "# comment\n"
        "   # indented comment\n"
        "\n"
        "src/gz a http://a.example\n"
        "src/gz b http://b.example # trailing comment makes five tokens\n"
        "src/gz c\n"
        "bogus line here\n"
        "justoneword\n"
    )
    assert [feed.name for feed in conf.feeds] == ["a"]


def test_quoted_tokens_and_tabs() -> None:
    conf = parsed('dest "my sd"\t"/mnt/my sd"\nsrc/gz\tq\t"http://q.example/a b"\n')
    assert conf.dests == {"my sd": "/mnt/my sd"}
    assert conf.feeds == [Feed("q", "http://q.example/a b", True)]


def test_last_lists_dir_wins() -> None:
    assert parsed("lists_dir ext /a\nlists_dir ext /b\n").lists_dir == "/b"


def test_arches_with_and_without_priority() -> None:
    conf = parsed("arch all 1\narch noarch 1\narch mipsel_24kc 10\narch extra\narch odd x\n")
    assert conf.arches == [("all", 1), ("noarch", 1), ("mipsel_24kc", 10), ("extra", 10), ("odd", 10)]


def test_options_first_value_wins_and_any_mention_enables_a_boolean() -> None:
    conf = parsed("option http_proxy http://p1\noption http_proxy http://p2\noption force_depends 0\n")
    assert conf.options["http_proxy"] == "http://p1"
    assert conf.option_enabled("force_depends")
    assert not conf.option_enabled("force_space")


def test_feed_names_for_output_parsing() -> None:
    conf = parsed("src/gz a http://a.example/feed/\nsrc b file:///srv/b\n")
    assert conf.feed_names() == {"http://a.example/feed": "a", "file:///srv/b": "b"}


def test_space_path_prefers_an_existing_overlay_root(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    conf = OpkgConf(dests={"root": "/", "sd": "/mnt/sd"}, offline_root=str(tmp_path / "r"),
                    options={"overlay_root": str(overlay)})
    assert conf.space_path() == str(tmp_path / "r")  # overlay missing: the dest itself
    overlay.mkdir()
    assert conf.space_path() == str(overlay)
    assert conf.space_path("sd") == str(tmp_path / "r/mnt/sd")
