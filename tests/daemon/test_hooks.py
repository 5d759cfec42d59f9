"""Hook specs are checked before a job is registered."""
import pytest

from pineapple.api.hooks import validate_hooks
from pineapple.errors import JobError


@pytest.mark.parametrize("spec", [{"notify": "mqtt", "message": "\ud800"}, {"command": "restart-\udfff"}])
def test_hook_text_that_is_not_unicode_is_an_invalid_field(spec):
    # Over the socket such text is refused as invalid_json; MQTT requests get this far.
    with pytest.raises(JobError) as refused:
        validate_hooks({"on_success": [spec]})
    assert refused.value.code == "invalid_field" and "surrogate" in refused.value.message


def test_unicode_hook_text_is_kept():
    assert validate_hooks({"on_failure": [{"notify": "mqtt", "message": "échec ✗"}]}) == {
        "on_failure": [{"notify": "mqtt", "message": "échec ✗"}]}
