"""Declarative endpoints: spec files as the desired state, a plan against the live state, export.

``load`` reads and validates spec files, ``diff`` normalises specs and compares them field by
field, ``plan`` decides what to create, update, leave or delete. All pure (no HTTP): the CLI
(``cli/apply.py``) fetches the live state, prints the plan and carries it out.
"""
