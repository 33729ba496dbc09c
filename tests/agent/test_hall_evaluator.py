"""The evaluator state the clerk's page shows (Hall.evaluator): armed by 办结 at the case's window."""

from __future__ import annotations

from agent.hall import Hall, devices_config_for
from agent.store import AgentStore
from protocol.models import NewCase, NewEvent
from tests.agent.clerk_helpers import ITEMS, NOW


def test_completion_arms_the_windows_keypad_and_the_state_says_so(tmp_path):
    store = AgentStore(tmp_path / "agent.db", "S01")
    store.save_config("catalog", 1, 0, {"items": [i.model_dump(mode="json") for i in ITEMS]}, b"raw")
    hall = Hall(store, devices_config_for("generic"), fake=True, data_dir=tmp_path, now=lambda: NOW)
    hall.open()
    try:
        case = store.register(NewCase(item_code="XK-001", applicant={"name": "王五"}, window="1", clerk="李四"), NOW)
        assert hall.evaluator("1") == {"keypad": True, "armed": False}
        assert hall.evaluator("9") == {"keypad": False, "armed": False}  # the generic board has windows 1 and 2
        store.add_event(case["case_no"], NewEvent(type="accept"), NOW)
        store.add_event(case["case_no"], NewEvent(type="complete"), NOW)
        state = hall.evaluator("1")
        assert state["armed"] and state["case_no"] == case["case_no"] and not state["voted"]
        assert 0 < state["seconds_left"] <= 120
        hall.press("1", "satisfied")
        assert hall.evaluator("1")["voted"]
        assert hall.evaluator("2") == {"keypad": True, "armed": False}
    finally:
        hall.collector.close()
        hall.devices.close()
        store.close()
