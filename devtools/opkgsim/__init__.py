"""An opkg-lede stand-in in Python (run it as ``devtools/opkg``).

Modules, one job each: :mod:`.args` (command line), :mod:`.conf`
(opkg.conf), :mod:`.lock`, :mod:`.messages` (stdout notices, collected
errors), :mod:`.control` (stanzas, versions, depends), :mod:`.pkgdb`
(feed + status database), :mod:`.update`, :mod:`.fetch` (downloads),
:mod:`.archive` (.ipk reading), :mod:`.install`, :mod:`.remove`,
:mod:`.scripts` (maintainer scripts), :mod:`.query` (read-only commands),
:mod:`.faults` (test knobs), :mod:`.cli` (main).
"""
