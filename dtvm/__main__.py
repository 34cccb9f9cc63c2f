"""python -m dtvm"""

from dtvm.cli import main

if __name__ == "__main__":
    main()
