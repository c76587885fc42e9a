import pytest

from custintel import registry
from custintel.errors import UserError
from custintel.paths import DataPaths


def test_promotion_history_and_rollback(tmp_path):
    paths = DataPaths(tmp_path)
    assert registry.champion_tag(paths) is None
    registry.set_champion(paths, "customer_model:a", "no champion yet")
    registry.set_champion(paths, "customer_model:b", "churn_auc delta +0.01")
    assert registry.champion_tag(paths) == "customer_model:b"
    assert registry.rollback(paths) == "customer_model:a"
    assert registry.champion_tag(paths) == "customer_model:a"
    history = registry.read_champion(paths)["history"]
    assert [h["tag"] for h in history] == ["customer_model:a", "customer_model:b", "customer_model:a"]
    assert history[-1]["reason"].startswith("rollback")


def test_rollback_without_earlier_champion_is_a_user_error(tmp_path):
    paths = DataPaths(tmp_path)
    with pytest.raises(UserError, match="no earlier champion"):
        registry.rollback(paths)
    registry.set_champion(paths, "customer_model:a", "first")
    with pytest.raises(UserError, match="no earlier champion"):
        registry.rollback(paths)
