"""Real OpenStack services for the lab and the tests: venvs.py (Keystone's and Neutron's own
virtualenvs), services.py (start them in a namespace), api.py (REST calls to them, the one way
to talk to them), lab.py (the lab in OpenStack mode)."""
