"""hedgearena's main job: ``python train.py`` (see ``python train.py --help``)."""

from hedgearena.cli import main

if __name__ == "__main__":
    main()
