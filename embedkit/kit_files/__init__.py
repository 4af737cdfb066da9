"""Files that ``embedkit kaggle-kit`` writes into a kit.

``kaggle_infer.py`` runs in the Kaggle notebook (standard library only); ``README.txt`` is a template.
Both are read as text, never imported by embedkit.
"""
