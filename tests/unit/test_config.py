import pytest

from pipeline.config import ConfigError, load_config


def test_defaults_are_embedded():
    cfg = load_config(None, environ={})
    assert cfg.source.kind == "embedded" and cfg.graph.backend == "embedded"
    assert cfg.source.path.exists()


def test_yaml_and_env_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("graph:\n  backend: neo4j\n  neo4j_uri: bolt://db:7687\nworker:\n  batch_size: 10\n")
    cfg = load_config(f, environ={"MKG_NEO4J_PASSWORD": "s3cret", "MKG__WORKER__BATCH_SIZE": "32",
                                  "MKG_KAFKA_SASL_PASSWORD": "kp"})
    assert cfg.graph.neo4j_uri == "bolt://db:7687"
    assert cfg.graph.neo4j_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert cfg.worker.batch_size == 32
    assert cfg.kafka.sasl_password.get_secret_value() == "kp"


def test_sasl_options():
    cfg = load_config(None, environ={"MKG__KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "MKG_KAFKA_SASL_USERNAME": "u",
                                     "MKG_KAFKA_SASL_PASSWORD": "p"})
    opts = cfg.kafka.client_options()
    assert opts["sasl_plain_username"] == "u" and opts["sasl_plain_password"] == "p"


@pytest.mark.parametrize("text, key", [
    ("graph:\n  backnd: neo4j\n", "graph.backnd"),
    ("worker:\n  batch_size: 0\n", "worker.batch_size"),
    ("source:\n  kind: carrier-pigeon\n", "source.kind"),
    ("nonsense: {}\n", "nonsense"),
])
def test_bad_key_is_named(tmp_path, text, key):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(f, environ={})


def test_bad_env_override_is_named():
    with pytest.raises(ConfigError, match="graph.backend"):
        load_config(None, environ={"MKG__GRAPH__BACKEND": "oracle"})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    f = tmp_path / "bad.yaml"
    f.write_text("graph: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f, environ={})


def test_shipped_example_configs_are_valid():
    from pathlib import Path

    import pipeline

    configs = sorted((Path(pipeline.__file__).parent / "configs").glob("*.yaml"))
    assert len(configs) >= 2
    kinds = {load_config(path, environ={}).source.kind for path in configs}
    assert kinds == {"embedded", "kafka"}


def test_the_novelty_section_is_the_discovery_params(tmp_path):
    """One home for the discovery thresholds: the novelty section is a DiscoveryParams, with its checks."""
    from continual.candidates.params import DiscoveryParams

    f = tmp_path / "c.yaml"
    f.write_text("novelty:\n  min_size: 7\n  examples: 3\n  observations_dir: obs\n")
    nov = load_config(f, environ={}).novelty
    assert isinstance(nov, DiscoveryParams)
    assert (nov.min_size, nov.examples, nov.max_members) == (7, 3, DiscoveryParams().max_members)
    f.write_text("novelty:\n  min_size: 1\n")
    with pytest.raises(ConfigError, match=r"novelty\.min_size"):
        load_config(f, environ={})


def test_train_evaluate_and_models_use_the_models_folder_of_the_config(tmp_path, capsys):
    """``--config`` names the model store (extractor.models_dir); ``--models`` still overrides it."""
    from extractors.store import ModelStore
    from pipeline.cli import _models_dir, build_parser, main

    f = tmp_path / "c.yaml"
    f.write_text(f"extractor:\n  models_dir: {tmp_path / 'from-config'}\n")
    parser = build_parser()
    for argv in (["train", "mre", "--data", "d"], ["evaluate", "mre", "--data", "d"], ["models", "list"]):
        assert _models_dir(parser.parse_args(argv + ["--config", str(f)])) == tmp_path / "from-config"
        assert _models_dir(parser.parse_args(argv + ["--config", str(f), "--models", str(tmp_path / "flag")])) \
            == tmp_path / "flag"
    shipped = ModelStore(tmp_path / "empty", shipped=True).current_version("mre")
    assert main(["models", "promote", "mre", shipped, "--config", str(f)]) == 0
    assert (tmp_path / "from-config" / "mre" / "current").read_text().strip() == shipped
    assert main(["models", "promote", "mre", shipped, "--config", str(f), "--models", str(tmp_path / "flag")]) == 0
    assert (tmp_path / "flag" / "mre" / "current").read_text().strip() == shipped
    capsys.readouterr()
