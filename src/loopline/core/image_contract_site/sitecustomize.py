"""Put on PYTHONPATH by loopline.core.image_contract.write_contract(): a kfp.local step started with
the contract in its environment may import only what its image installs."""

from loopline.core.image_contract import install_guard

install_guard()
