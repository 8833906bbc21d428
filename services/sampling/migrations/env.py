from services.sampling.models import Base
from shared.db import run_alembic_env

run_alembic_env(Base.metadata)
