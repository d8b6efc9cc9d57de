"""The paper's two analyses of GALRec, one command each (``python -m recbole_galrec.analysis <command>``):

- ``sensitivity`` (:mod:`.sensitivity`): GALRec run once per value of one setting (the contrastive temperature,
  the prompt's history length, the number of neighbours) through the benchmark's machinery, with validation and
  test NDCG@10 and Hit@10 against the value as JSON and a line plot (the paper's figure 5);
- ``representations`` (:mod:`.representations`): a trained GALRec checkpoint's hop representations (E0, E1, E2 of
  users and items) measured by the alignment and uniformity of Wang and Isola (2020) and drawn as 2-D densities
  on the circle (the paper's figure 4).
"""
