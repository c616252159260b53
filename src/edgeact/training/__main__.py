"""``python -m edgeact.training ARGS`` runs ``edgeact train ARGS``: the module torchrun starts in
every process (``torchrun --nproc-per-node N -m edgeact.training --data D --out O ...``)."""

if __name__ == "__main__":
    import sys

    from edgeact.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
