terraform {
  # 1.9 is the first release whose `validation` blocks may refer to other input variables
  # (the lifecycle day ordering, the Object Lock pair and the bucket naming pair need it).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 6.0"
    }
  }
}
