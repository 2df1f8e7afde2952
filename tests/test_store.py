import os

import pytest

from charpipe import store


def build(root, key="k1", content=b"hello"):
    with store.building(root, "stage", key, {"up": "x"}, {"n": 1}) as out:
        (out / "data.bin").write_bytes(content)
        (out / "sub").mkdir()
        (out / "sub" / "more.txt").write_text("more")
    return store.stage_dir(root, "stage", key)


def test_a_published_folder_has_a_manifest_of_every_file(tmp_path):
    folder = build(tmp_path)
    manifest = store.read_manifest(folder)
    assert set(manifest["files"]) == {"data.bin", "sub/more.txt"}
    assert manifest["params"] == {"n": 1} and manifest["inputs"] == {"up": "x"}
    assert {"python", "tensorflow", "keras", "prefect", "pyarrow"} <= set(
        manifest["versions"])
    assert store.verify(folder) is None
    assert [p.name for p in (tmp_path / "stage").iterdir()] == ["k1"]


@pytest.mark.parametrize("damage, problem", [
    (lambda f: (f / "data.bin").unlink(), "data.bin is missing"),
    (lambda f: os.truncate(f / "data.bin", 2), "data.bin has 2 bytes"),
    (lambda f: (f / "data.bin").write_bytes(b"HELLO"), "does not match its sha256"),
    (lambda f: (f / store.MANIFEST).write_text("{"), "unreadable manifest"),
])
def test_damage_is_detected(tmp_path, damage, problem):
    folder = build(tmp_path)
    damage(folder)
    assert problem in store.verify(folder)


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with store.building(tmp_path, "stage", "k1", {}, {}) as out:
            (out / "half.bin").write_bytes(b"12")
            raise RuntimeError("stage failed")
    assert list((tmp_path / "stage").iterdir()) == []


def test_a_damaged_folder_is_set_aside_and_rebuilt(tmp_path):
    folder = build(tmp_path)
    os.truncate(folder / "data.bin", 1)
    build(tmp_path)
    assert store.verify(folder) is None
    kept = [p.name for p in (tmp_path / "stage").iterdir() if p.name != "k1"]
    assert len(kept) == 1 and kept[0].startswith(".damaged-k1-")


def test_an_intact_folder_wins_over_a_second_build(tmp_path):
    folder = build(tmp_path, content=b"first")
    build(tmp_path, content=b"second")
    assert (folder / "data.bin").read_bytes() == b"first"


def test_an_unusable_root_names_the_way_out(tmp_path):
    # A file where the root should be: refused even for root, who can write
    # anywhere, and nothing is created.
    root = tmp_path / "root-is-a-file"
    root.write_text("")
    with pytest.raises(store.StoreError, match="--artifacts"):
        build(root)
    assert root.read_text() == ""


def test_keys_depend_on_every_part():
    base = store.stage_key("s", "c", {"a": "1"}, {"p": 1})
    assert base == store.stage_key("s", "c", {"a": "1"}, {"p": 1})
    assert len({base, store.stage_key("t", "c", {"a": "1"}, {"p": 1}),
                store.stage_key("s", "d", {"a": "1"}, {"p": 1}),
                store.stage_key("s", "c", {"a": "2"}, {"p": 1}),
                store.stage_key("s", "c", {"a": "1"}, {"p": 2})}) == 5
