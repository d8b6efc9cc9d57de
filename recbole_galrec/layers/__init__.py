"""GALRec's building blocks, each a module of its own: the language-model backbone (:mod:`.backbone`), prompt
assembly (:mod:`.prompt`), the InfoNCE loss (:mod:`.losses`), the MoCo key queue (:mod:`.queue`) and momentum
copy (:mod:`.moco`). They know no RecBole run: the model class (:mod:`recbole_galrec.model.galrec`) ties them."""
