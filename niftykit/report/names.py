"""Names of label codes, and the published Dice scores to compare against.

:data:`ABDOMINAL_ORGANS` is the code table of the public multi-organ abdominal CT
labels (Zenodo record 1169361, Gibson et al.), the codes the phantoms of
:mod:`niftykit.data.abdomen` and ``niftykit prepare-abdominal`` write.
:data:`GIBSON_2018_DICE` are the dense V-network's Dice scores in Gibson et al.,
"Automatic multi-organ segmentation on abdominal CT with dense V-networks",
IEEE TMI 37(8), 2018 (doi:10.1109/TMI.2018.2806309), cross-validation over the
90 cases, as issue 7 and ``demos/abdominal_ct/run_demo.py`` cite them (Table V, means).
Not checked against the paper here: its abstract quotes 0.78 (pancreas), 0.90 (stomach)
and 0.76 (esophagus), higher than the values below, so the two are probably different
statistics (e.g. medians in the abstract). A config may later name its labels itself (``segmentation.label_names``,
a mapping code -> name); :func:`label_names` reads that key when the config has it.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

__all__ = ["ABDOMINAL_ORGANS", "GIBSON_2018_DICE", "NAME_MODES", "label_names", "is_abdominal"]

#: Label code -> organ of the public multi-organ abdominal CT label set.
ABDOMINAL_ORGANS: Dict[int, str] = {1: "spleen", 3: "left kidney", 4: "gallbladder",
                                    5: "esophagus", 6: "liver", 7: "stomach", 11: "pancreas",
                                    14: "duodenum"}
#: Label code -> Dice of the dense V-network (Gibson et al. 2018), for comparison.
GIBSON_2018_DICE: Dict[int, float] = {1: 0.95, 3: 0.93, 4: 0.73, 5: 0.71, 6: 0.95, 7: 0.87,
                                      11: 0.75, 14: 0.63}
#: ``auto``: the config's names, else the organ names when the codes look abdominal;
#: ``abdominal``: the organ names; ``codes``: no names.
NAME_MODES = ("auto", "abdominal", "codes")
#: how many abdominal codes must be present, at least, for ``auto`` to call them organs
_MIN_ABDOMINAL = 4


def is_abdominal(codes: Sequence[Any]) -> bool:
    """True when ``codes`` are the abdominal organ codes: all among
    :data:`ABDOMINAL_ORGANS` and at least four of them (so that a binary 0/1 task
    is not called "spleen")."""
    found = {c for c in codes if isinstance(c, int)}
    return (len(found) == len(list(codes)) and found <= set(ABDOMINAL_ORGANS)
            and len(found) >= _MIN_ABDOMINAL)


def _config_names(config: Any) -> Optional[Mapping[Any, str]]:
    section = getattr(config, "segmentation", None) if config is not None else None
    names = getattr(section, "label_names", None)
    if not names:
        return None
    return {int(k) if str(k).lstrip("-").isdigit() else k: str(v) for k, v in dict(names).items()}


def label_names(codes: Sequence[Any], config: Any = None, mode: str = "auto") -> Dict[Any, str]:
    """Code -> name for ``codes`` (codes without a name are left out).

    Args:
        codes: the label codes (ints; other units such as ``all`` get no name).
        config: a loaded Config; its ``segmentation.label_names`` wins when present.
        mode: one of :data:`NAME_MODES`.

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode not in NAME_MODES:
        raise ValueError(f"names must be one of {', '.join(NAME_MODES)}, got {mode!r}")
    if mode == "codes":
        return {}
    own = _config_names(config) if mode == "auto" else None
    if own is not None:
        return {c: own[c] for c in codes if c in own}
    if mode == "abdominal" or is_abdominal(codes):
        return {c: ABDOMINAL_ORGANS[c] for c in codes if c in ABDOMINAL_ORGANS}
    return {}
