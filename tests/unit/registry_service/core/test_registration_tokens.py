from registry_service.core.registration_tokens import (
    hash_idempotency_key,
    hash_token,
    new_token,
    seal_token,
    token_matches,
    unseal_token,
)


def test_tokens_are_random_and_only_their_hash_matches():
    first, second = new_token(), new_token()
    assert first != second and len(first) >= 40
    assert token_matches(first, hash_token(first))
    assert not token_matches(second, hash_token(first))
    assert not token_matches("", hash_token(""))


def test_a_sealed_token_opens_only_with_its_idempotency_key():
    token = new_token()
    sealed = seal_token(token, "key-1")
    assert token not in sealed
    assert unseal_token(sealed, "key-1") == token
    assert unseal_token(sealed, "key-2") != token


def test_no_idempotency_key_means_nothing_sealed():
    assert seal_token(new_token(), "") == ""
    assert hash_idempotency_key("") == ""
    assert hash_idempotency_key("a") != hash_idempotency_key("b")
