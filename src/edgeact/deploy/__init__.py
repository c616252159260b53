"""Deploy a bundle to the Pi over the user's own OpenSSH, and set the Pi up to drive it.

    remote.py     the Pi-side snippets (POSIX sh + python3, no edgeact needed) and the versioned layout
    bundles.py    local side: checkpoint -> bundle, verification, the bundle's id
    pipeline.py   deploy / rollback / list: verify, send, verify again, smoke check, atomic switch
    smoke.py      runs ON the Pi: load the bundle with a backend, time one chunk
    runtime_setup.py  `--setup`: a venv on the Pi with our locally built wheel
    service.py    `--service`: the systemd unit from templates/edgeact.service

Every step rides on one multiplexed connection, :class:`edgeact.ssh.SshSession`, which
``edgeact data pull`` shares.

This package is imported on the Pi (``python -m edgeact.deploy.smoke``): nothing heavy here.
"""
