"""Programme scheduling (pure, no I/O): programmes, recurrence, priority classes, plan compilation.

Not built yet: this package is filled by the programme-scheduling issue. It exists now because the
layout is fixed and the controller and agent will both import from it.
"""
