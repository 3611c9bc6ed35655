"""Data sets reading the real on-disk formats (COCO, LVIS, ODinW, Objects365, MDETR, Flickr30k Entities)."""

from .coco import COCODataset
from .coco_grounding import CocoGrounding
from .flickr_entities import FlickrEntities
from .lvis import LvisDetection
from .modulated import FlickrDataset, MixedDataset, ModulatedDataset, RefExpDataset
from .objects365 import Objects365Grounding
from .tsv import CocoDetectionTSV
from .wrappers import ConcatDataset, RepeatedDataset, SeededDataset

__all__ = [
    "COCODataset",
    "CocoDetectionTSV",
    "CocoGrounding",
    "ConcatDataset",
    "FlickrDataset",
    "FlickrEntities",
    "LvisDetection",
    "MixedDataset",
    "ModulatedDataset",
    "Objects365Grounding",
    "RefExpDataset",
    "RepeatedDataset",
    "SeededDataset",
]
