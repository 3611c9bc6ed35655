"""Flickr30k Entities raw-file reader."""

import pytest

from maskrcnn_benchmark.data.datasets.flickr_entities import (
    FlickrEntities,
    parse_annotation,
    parse_sentence,
    parse_sentences,
)


def test_parse_sentence_markup():
    line = "A [/EN#18/people young man] in [/EN#19/clothing/other a red shirt] is jumping ."
    sentence = parse_sentence(line)
    assert sentence.text == "A young man in a red shirt is jumping ."
    first, second = sentence.phrases
    assert (first.phrase_id, first.phrase_types, first.text) == ("18", ("people",), "young man")
    assert first.first_word_index == 1
    assert (second.phrase_id, second.phrase_types, second.first_word_index) == ("19", ("clothing", "other"), 4)
    assert sentence.text[first.char_start:first.char_end] == "young man"
    assert sentence.text[second.char_start:second.char_end] == "a red shirt"
    with pytest.raises(ValueError, match="malformed phrase markup"):
        parse_sentence("A [/EN#1/people man without end")


def test_annotation_xml_is_zero_based(tmp_path):
    xml = ("<annotation><size><width>50</width><height>40</height><depth>3</depth></size>"
           "<object><name>1</name><name>2</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax>"
           "</bndbox></object><object><name>1</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>6</xmax><ymax>7</ymax>"
           "</bndbox></object><object><name>3</name><nobndbox>1</nobndbox><scene>1</scene></object></annotation>")
    path = tmp_path / "1.xml"
    path.write_text(xml)
    anno = parse_annotation(str(path))
    assert (anno["width"], anno["height"]) == (50, 40)
    assert anno["boxes"] == {"1": [[0, 1, 9, 19], [4, 4, 5, 6]], "2": [[0, 1, 9, 19]]}
    assert anno["scene"] == ["3"] and anno["nobox"] == ["3"]
    path.write_text("<annotation><size><width>5</width></size></annotation>")
    with pytest.raises(ValueError, match="missing <height>"):
        parse_annotation(str(path))


def test_synthetic_entities_agree_with_the_mdetr_json(synthetic_root):
    import json

    _, manifest = synthetic_root
    flickr = manifest["flickr"]
    entities = FlickrEntities(flickr["entities_root"])
    with open(flickr["ann_files"]["test"]) as f:
        mdetr = json.load(f)
    image_ids = entities.split("test")
    assert len(image_ids) == 3
    for record in mdetr["images"]:
        sentences = entities.sentences(str(record["original_img_id"]))
        sentence = sentences[record["sentence_id"]]
        assert sentence.text == record["caption"]
        boxes = entities.annotation(str(record["original_img_id"])).boxes
        boxed = [p for p in sentence.phrases if p.phrase_id in boxes]
        assert [[[p.char_start, p.char_end]] for p in boxed] == record["tokens_positive_eval"]
    as_dicts = parse_sentences(f"{flickr['entities_root']}/Sentences/{image_ids[0]}.txt")
    assert as_dicts[1]["phrases"][-1]["phrase_type"] == ["scene"]
    with pytest.raises(FileNotFoundError, match="sentence file not found"):
        entities.sentences("nope")
