"""What the App shows and does, above the library: delegated-operation activity, the checks a
form shows before a run (preflight), the panel's state and actions, worker scheduling.
"""
