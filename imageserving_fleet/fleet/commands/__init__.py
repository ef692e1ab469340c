"""The fleet commands as library functions: each takes a RunContext (context.py) and returns typed results.

    run.py       execute(): one fan-out opened for the run (fanout.FanOut), the progress hook,
                 Ctrl-C -> a partial Outcome; open_fanout(): in-process Fleet or ClusterFleet
    status.py    status [ID], ping
    control.py   start [ID], stop [ID]
    rolling.py   restart [ID], reload, config push FILE: batches gated on health (fleet/rolling.py)
    logs.py      logs NAME -n N
    deploy.py    deploy: the wheel, the interpreters, the phases (fleet/deploy/)
    report.py    report, report merge (fleet/reports/)
    hosts.py     hosts: the rows, contacting nothing
    live.py      status --watch, exporter: one long-lived fan-out over kept connections

None of them prints or exits: the CLI (cli/) parses, calls one, renders, maps errors to exit codes;
a test, a cluster worker or a connection holder can call them without a terminal.
"""
