import pytest
from sampling_testkit import PostgresSampler


@pytest.fixture(scope="session")
def sql_draw(postgres_admin_url) -> PostgresSampler:
    """The service's draw as it runs in PostgreSQL (see sampling_testkit.PostgresSampler)."""
    sampler = PostgresSampler(postgres_admin_url)
    yield sampler
    sampler.close()
