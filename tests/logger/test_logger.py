"""``pineapple.logger``: Hak5's ``get_logger`` with a log that really rotates."""
from __future__ import annotations

import logging

from pineapple.logger import PrettyFormatter, get_logger, module_log_handler
from pineapple.logger.pretty_formatter import PrettyFormatter as ByItsOwnPath


def test_get_logger_writes_the_module_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PINEAPPLE_MODULE_SOCKET_DIR", str(tmp_path / "modules"))
    logger = get_logger("loggerdemo", logging.INFO)
    assert logger is logging.getLogger("loggerdemo") and logger.level == logging.INFO
    logger.info("hello %s", "file")
    for handler in logger.handlers:
        handler.flush()
    assert "hello file" in (tmp_path / "modules" / "loggerdemo.log").read_text()
    assert capsys.readouterr().err == ""  # console only at or below console_logger_level (DEBUG)
    get_logger("loggerdemo", logging.DEBUG).debug("hello console")
    assert "hello console" in capsys.readouterr().err
    again = get_logger("loggerdemo", logging.ERROR, log_to_file=False)
    assert again is logger and logger.handlers == []  # its own handlers replaced, none added
    mine = logging.NullHandler()
    logger.addHandler(mine)
    get_logger("loggerdemo", logging.ERROR, log_to_file=False)
    assert logger.handlers == [mine]  # a caller's handler is kept


def test_the_log_rotates(tmp_path):
    path = tmp_path / "rot.log"
    handler = module_log_handler(str(path), max_bytes=1000, backups=0)
    logger = logging.Logger("rotation-test")
    logger.addHandler(handler)
    for i in range(200):
        logger.warning("line %03d %s", i, "x" * 40)
    handler.close()
    assert path.stat().st_size <= 1000 and (tmp_path / "rot.log.1").stat().st_size <= 1000
    assert not (tmp_path / "rot.log.2").exists()


def test_pretty_formatter_colours_by_level():
    assert ByItsOwnPath is PrettyFormatter
    formatter = PrettyFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad", (), None)
    assert formatter.format(record) == "\x1b[31mERROR bad\x1b[0m"
    record = logging.LogRecord("x", 25, __file__, 1, "between", (), None)
    assert formatter.format(record).startswith("\x1b[34m")  # takes INFO's colour
